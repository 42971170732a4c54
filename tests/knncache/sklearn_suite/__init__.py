"""A pytest plugin that runs scikit-learn's own tests with knncache's classes substituted."""
