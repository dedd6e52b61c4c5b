"""Measurements: activations, replies, scores, selection, controls, staged probes, SAE and style
inputs. One measurement object per claim family; fixtures and calibration both construct them.
"""
