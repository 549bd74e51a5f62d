"""`python -m nomadmesh ...` runs the CLI (tests start the agent this way, in a subprocess)."""
from nomadmesh.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="nomadmesh")
