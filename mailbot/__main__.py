# The import is inside the guard: a spawned worker process imports this module again
# (as __mp_main__), and needs none of the command line.
if __name__ == "__main__":
    from mailbot.cli import main

    raise SystemExit(main())
