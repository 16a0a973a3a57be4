"""Decoding: the cached-LM protocol, planning, the position rule, samplers, beam search and one loop per runtime."""
