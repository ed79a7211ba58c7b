"""`python -m api.cli ...` is `cxa ...` (the tests and the load benchmark start servers this way)."""

from api.cli import main

if __name__ == "__main__":
    main()
