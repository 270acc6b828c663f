"""Policy packs: each district's rules as data, with the seed lines they come from.

    from workbench.policy import load_policy
    policy = load_policy("bps")
    policy.small_group_rule()      # for the disclosure engine
    policy.content_hash            # recorded in release manifests

This package imports nothing from Jupyter.
"""

from workbench.policy.loader import Policy, PolicyError, available_policies, load_policy
from workbench.policy.model import PolicyPack, Source

__all__ = ["Policy", "PolicyError", "PolicyPack", "Source", "available_policies", "load_policy"]
