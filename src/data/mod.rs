//! Datasets: MNIST IDX files, folders of class sub-folders, list files, and netc's own
//! dataset folders.
