"""``python -m fewshot ...`` (and ``torchrun --nproc-per-node N -m fewshot train ...``): the CLI."""

from fewshot_cli.app import main

if __name__ == "__main__":
    main()
