"""Development tools: throwaway servers, the demo and crash points for tests.

Nothing the daemon runs imports this package's servers or demo; only `failpoints`,
which costs one dictionary lookup when unset."""
