"""Evaluation: encoder metrics, decoder cells and their selection, LMS, rewritten-model export.

Import the submodules directly (``gradiend.evaluation.lms``, ``.encoder``, ``.decoder``, ...);
this package file stays light so that importing one scorer does not pull in plotting or training.
"""
