"""What the model may do besides talking: the tools and their policy (``catalog``), and the
dialogue that asks the caller before a tool with side effects runs."""
