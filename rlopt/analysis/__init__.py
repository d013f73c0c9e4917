"""From finished runs to evidence: loading, scores, verdicts, reports and figures."""
