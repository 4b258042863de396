"""Study configuration, loading of tables, cohort assignment and the exclusion log."""
