"""Ranking correlation (super-net score vs ground truth) and representation shift between choices.

Light to import: scipy and matplotlib are imported inside the functions that need them.
"""

from .metrics import Estimate, bootstrap, correlations, kendall_tau, spearman_rho, top_k_precision
from .report import RankingReport, compare, floor_taus, score_archs, write_report
from .sampling import parse_arch_list, sample_archs
from .shift import ShiftResult, module_similarity, representation_shift
from .truth import (default_nasbench_path, GroundTruth, canonical_arch, canonical_key, load_nasbench_macro,
                    load_truth, load_truth_file)

__all__ = ["Estimate", "bootstrap", "correlations", "kendall_tau", "spearman_rho", "top_k_precision",
           "RankingReport", "compare", "floor_taus", "score_archs", "write_report", "parse_arch_list",
           "sample_archs", "ShiftResult", "module_similarity", "representation_shift", "default_nasbench_path",
           "GroundTruth", "canonical_arch", "canonical_key", "load_nasbench_macro", "load_truth", "load_truth_file"]
