-- search_image_by_image_online
-- The same statements as notebooks/search_image_by_image_online.ipynb, for the `thanosql` command:
--   thanosql -w WORKSPACE examples/search_image_by_image_online.sql

GET THANOSQL DATASET mnist_data
OPTIONS (overwrite=True);

COPY mnist_train 
OPTIONS (overwrite=True)
FROM "thanosql-dataset/mnist_data/mnist_train.csv";

COPY mnist_test 
OPTIONS (overwrite=True)
FROM "thanosql-dataset/mnist_data/mnist_test.csv";

SELECT * 
FROM mnist_train 
LIMIT 5;

BUILD MODEL my_image_search_model
USING SimCLR
OPTIONS (
    image_col="image_path",
    max_epochs=1,
    overwrite=True
    )
AS 
SELECT * 
FROM mnist_train;

CONVERT USING my_image_search_model
OPTIONS (
    table_name= "mnist_test",
    image_col="image_path",
    column_name="convert_result"
    )
AS 
SELECT * 
FROM mnist_test;

SEARCH IMAGE image='thanosql-dataset/mnist_data/test/923.jpg' 
USING my_image_search_model 
OPTIONS (
    emb_col="convert_result",
    column_name="search_result"
    )
AS
SELECT * 
FROM mnist_test;

PRINT IMAGE 
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
    );

SELECT label, search_result
FROM (
    SEARCH IMAGE image='thanosql-dataset/mnist_data/test/923.jpg'
    USING my_image_search_model
    OPTIONS (emb_col="convert_result", column_name="search_result")
    AS SELECT * FROM mnist_test
)
ORDER BY search_result DESC
LIMIT 5;
