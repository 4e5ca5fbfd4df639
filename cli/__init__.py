"""The `fewshot` command line (installed as the `fewshot_cli` package)."""
