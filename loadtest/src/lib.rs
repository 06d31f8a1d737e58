//! stub
pub mod load;
pub mod sim;
