"""doodle-engine's command line (thin entry point; the code is ``doodle_engine.cli``).

Run ``python cli.py ...`` from a checkout, or the installed ``doodle-engine`` command."""

from doodle_engine.cli import run

if __name__ == "__main__":
    run()
