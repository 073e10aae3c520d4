"""Memory planning, from a model's config alone (no weight is read):

- ``estimate.py``  bytes per term (weights, trainable, gradients, optimizer, activations, logits, heap slack)
                   for a model shape, a method's footprint and a workload
- ``verdict.py``   the plan against the profile's budget: fits or not, the cheapest change that makes it fit,
                   and ``method.name = "auto"``'s choice
- ``report.py``    the text of ``adapterkit plan``
"""
