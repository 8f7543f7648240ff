"""What the command-line entry points share: the error a user can fix (`errors.UserError`) and the one-line exit
that prints it (`errors.run_main`), checks of numeric arguments (`checks`), and output files written whole
(`files.write_atomic`)."""
