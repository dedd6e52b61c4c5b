"""The pytest plugin: options, start-up checks, run state, summary and gate exit policy.

Imports pytest and the standard library only at module level, so that loading the plugin in
every pytest run of an environment imports no torch.
"""
