"""The math the course teaches, in closed form and small solvers: the expectile loss and expectiles, exact tabular
IQL and its fixed points. Nothing here imports the rest of the kit; the engine takes its expectile loss from here."""
