"""doodle-engine's command line (thin entry point: ``doodle_engine.launch`` hands the command to a
warm server when one runs, else runs ``doodle_engine.cli`` here).

Run ``python cli.py ...`` from a checkout, or the installed ``doodle-engine`` command."""

from doodle_engine.launch import run

if __name__ == "__main__":
    run()
