"""Learned reward models as proxies: the scalar-head model (model.py), Bradley-Terry training
on preference pairs with controlled flaws (pairs.py, bradley_terry.py, train_command.py), and
their evaluation under a policy (metrics.py, eval_command.py)."""
