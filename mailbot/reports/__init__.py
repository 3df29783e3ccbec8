"""Reports: the monthly figures, the report, the xlsx log and the exports."""
