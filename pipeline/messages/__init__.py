"""Taking a message from a caller: the form the bot walks them through (``taking``), and how
spoken digits become a callback number (``digits``)."""
