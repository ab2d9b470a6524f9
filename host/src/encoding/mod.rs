//! Payload encodings: BSON framing, Extended JSON into BSON and BSON back
//! out as relaxed Extended JSON, and payloads read as MongoDB documents.

pub mod bson_frame;
pub mod document;
pub mod json_to_bson;
pub mod relaxed_json;
