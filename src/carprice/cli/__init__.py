"""The `carprice` command line: one entry point, subcommands per district."""
