"""Seed 002's statements (search image by image) exactly as the tutorial writes them, trailing
spaces included, for the tests that run them (test_search.py, test_training_statements.py)."""

SEED_002_BUILD = """BUILD MODEL my_image_search_model
USING SimCLR
OPTIONS (
    image_col="image_path",
    max_epochs=1,
    overwrite=True
    )
AS 
SELECT * 
FROM mnist_train"""

SEED_002_CONVERT = """CONVERT USING my_image_search_model
OPTIONS (
    table_name= "mnist_test",
    image_col="image_path",
    column_name="convert_result"
    )
AS 
SELECT * 
FROM mnist_test"""

SEED_002_SEARCH = """SEARCH IMAGE image='thanosql-dataset/mnist_data/test/923.jpg' 
USING my_image_search_model 
OPTIONS (
    emb_col="convert_result",
    column_name="search_result"
    )
AS
SELECT * 
FROM mnist_test"""

SEED_002_PRINT = """PRINT IMAGE 
AS (
    SELECT image_path, search_result 
    FROM (
        SEARCH IMAGE image='thanosql-dataset/mnist_data/test/923.jpg' 
        USING my_image_search_model 
        OPTIONS (
            emb_col="convert_result",
            column_name="search_result"
            )
        AS 
        SELECT * 
        FROM mnist_test
        )
    ORDER BY search_result DESC 
    LIMIT 4
    )"""
