-- search_image_by_text_online
-- The same statements as notebooks/search_image_by_text_online.ipynb, for the `thanosql` command:
--   thanosql -w WORKSPACE examples/search_image_by_text_online.sql

GET THANOSQL DATASET unsplash_data
OPTIONS (overwrite=True);

COPY unsplash_data
OPTIONS (if_exists='replace')
FROM 'thanosql-dataset/unsplash_data/unsplash.csv';

GET THANOSQL MODEL clip
OPTIONS (
model_name='tutorial_search_clip',
overwrite=True
);

SELECT *
FROM unsplash_data
LIMIT 5;

PRINT IMAGE
AS
SELECT image_path
FROM unsplash_data
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
FROM unsplash_data;

CREATE TABLE unsplash_data_convert_en AS
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
FROM unsplash_data
);

SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='a black cat',
emb_col='convert_result',
result_col='search_result'
)
AS
SELECT *
FROM unsplash_data_convert_en;

SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='a black cat',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM unsplash_data_convert_en
);

PRINT IMAGE
AS (
SELECT image_path, search_result
FROM (
SEARCH IMAGE
USING tutorial_search_clip
OPTIONS (
search_by='text',
search_input='a black cat',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM unsplash_data_convert_en
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
search_input='a dog on a chair',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM unsplash_data_convert_en
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
search_input='gloomy photos',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM unsplash_data_convert_en
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
search_input='the feeling when your program finally works',
emb_col='convert_result',
result_col='search_result',
top_k=5
)
AS
SELECT *
FROM unsplash_data_convert_en
)
);
