"""The subcommands' work, one module each: read the inputs, call the library, write the outputs, refuse in one line.

`asrkit/cli.py` parses the command line and calls these; they are plain functions, usable from Python as well.
"""
