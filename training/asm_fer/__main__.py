"""`asm-fer` / `python -m asm_fer`: train, export, fixtures."""

from .cli import main

raise SystemExit(main())
