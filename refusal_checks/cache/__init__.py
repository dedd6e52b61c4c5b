"""The on-disk cache: keys, the array store and its file format, resumable chunks, reply identities.
"""
