DROP TABLE provider_test_runs;
