-- search_image_by_text
-- The same statements as notebooks/search_image_by_text.ipynb, for the `thanosql` command:
--   thanosql -w WORKSPACE examples/search_image_by_text.sql

GET THANOSQL DATASET shapes_data
OPTIONS (overwrite=True);

COPY shapes_data
OPTIONS (if_exists='replace')
FROM 'thanosql-dataset/shapes_data/shapes.csv';

COPY shapes_train OPTIONS (if_exists='replace') FROM 'thanosql-dataset/shapes_data/shapes_train.csv';
COPY shapes_test OPTIONS (if_exists='replace') FROM 'thanosql-dataset/shapes_data/shapes_test.csv';

BUILD MODEL tutorial_search_clip
USING CLIP
OPTIONS (
image_col='image_path',
text_col='ai_description',
overwrite=True
)
AS
SELECT *
FROM shapes_train;

SELECT *
FROM shapes_data
LIMIT 5;

PRINT IMAGE
AS
SELECT image_path
FROM shapes_data
LIMIT 5;

CONVERT USING tutorial_search_clip
OPTIONS (
image_col='image_path',
convert_type='image',
batch_size=128,
result_col='convert_result'
)
AS
SELECT *
FROM shapes_data;

CREATE TABLE shapes_data_convert_en AS
SELECT * FROM (
CONVERT USING tutorial_search_clip
OPTIONS (
image_col='image_path',
convert_type='image',
batch_size=128,
result_col='convert_result'
)
AS
SELECT *
FROM shapes_data
);

SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='two red circles',
emb_col='convert_result',
result_col='search_result'
)
AS
SELECT *
FROM shapes_data_convert_en;

SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='two red circles',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM shapes_data_convert_en
);

PRINT IMAGE
AS (
SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='two red circles',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM shapes_data_convert_en
)
);

PRINT IMAGE
AS (
SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='a yellow star on a black background',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM shapes_data_convert_en
)
);

PRINT IMAGE
AS (
SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='three green squares on the left of a white background',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM shapes_data_convert_en
)
);

SELECT ai_description, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='two red circles',
emb_col='convert_result',
top_k=5
)
AS
SELECT *
FROM shapes_data_convert_en
WHERE photo_id IN (SELECT photo_id FROM shapes_test)
);
