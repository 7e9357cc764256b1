"""Kinesis Data Analytics SQL programs on the window engine: read a program (statements.py,
dialect.py), check it against the supported subset and compile it to an AppSpec with a plan
(program.py) that the engine runs on either runtime. docs/kda-sql.md lists the subset."""
