"""Training and evaluation data: rows with file:line errors and the bad-row policy (``rows``), the file
readers of pairs (``readers``) and of plain texts (``texts``), examples and their collator, splits by
question, batch samplers, and the preparation of a recipe's task data (``prepare``)."""
