from app.cli import cli
from app.startup import run

run(cli)
