"""edgelaw: what it costs, in CPU, memory, energy and accuracy, to run a model on a CPU."""

__version__ = "0.1.0"
