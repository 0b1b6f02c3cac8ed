-- search_image_by_image
-- The same statements as notebooks/search_image_by_image.ipynb, for the `thanosql` command:
--   thanosql -w WORKSPACE examples/search_image_by_image.sql

GET THANOSQL DATASET digits_data
OPTIONS (overwrite=True);

COPY digits_train 
OPTIONS (overwrite=True)
FROM "thanosql-dataset/digits_data/digits_train.csv";

COPY digits_test 
OPTIONS (overwrite=True)
FROM "thanosql-dataset/digits_data/digits_test.csv";

SELECT * 
FROM digits_train 
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
FROM digits_train;

CONVERT USING my_image_search_model
OPTIONS (
    table_name= "digits_test",
    image_col="image_path",
    column_name="convert_result"
    )
AS 
SELECT * 
FROM digits_test;

SEARCH IMAGE image='thanosql-dataset/digits_data/test/923.jpg' 
USING my_image_search_model 
OPTIONS (
    emb_col="convert_result",
    column_name="search_result"
    )
AS
SELECT * 
FROM digits_test;

PRINT IMAGE 
AS (
    SELECT image_path, search_result 
    FROM (
        SEARCH IMAGE image='thanosql-dataset/digits_data/test/923.jpg' 
        USING my_image_search_model 
        OPTIONS (
            emb_col="convert_result",
            column_name="search_result"
            )
        AS 
        SELECT * 
        FROM digits_test
        )
    ORDER BY search_result DESC 
    LIMIT 4
    );

SELECT label, search_result
FROM (
    SEARCH IMAGE image='thanosql-dataset/digits_data/test/923.jpg'
    USING my_image_search_model
    OPTIONS (emb_col="convert_result", column_name="search_result")
    AS SELECT * FROM digits_test
)
ORDER BY search_result DESC
LIMIT 5;
