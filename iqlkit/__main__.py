"""`python -m iqlkit`: see iqlkit.cli."""
from iqlkit.cli import main

main()
