//! What the fuzz targets share: `arbitrary` stand-ins for Ferry's contract
//! types (the generated WIT types cannot derive `Arbitrary`), and payloads
//! shaped like what sources and transforms really send, so the fuzzer
//! spends its time past the first parse.

use arbitrary::{Arbitrary, Result, Unstructured};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, JavaScriptCodeWithScope, Regex, Timestamp};
use ferry::record::{
    Batch, BatchSource, ClusterTime, Encoding, Header, IggyPosition, IggyTopic, MessageId, MongodbChange, Namespace,
    Operation, Origin, Outcome, Output, Record, Write,
};

/// Nesting deeper than this is cut short: deep documents are fuzzed by the
/// byte-level modes, structured ones are about types and shapes.
const MAX_DEPTH: usize = 6;

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum ArbEncoding {
    Json,
    Bson,
    Text,
    Binary,
}

impl From<ArbEncoding> for Encoding {
    fn from(encoding: ArbEncoding) -> Self {
        match encoding {
            ArbEncoding::Json => Encoding::Json,
            ArbEncoding::Bson => Encoding::Bson,
            ArbEncoding::Text => Encoding::Text,
            ArbEncoding::Binary => Encoding::Binary,
        }
    }
}

/// Header names drawn mostly from the ones Ferry itself reads and writes,
/// so replacing and reading them back is exercised.
#[derive(Debug, Clone, Arbitrary)]
pub enum ArbName {
    Key,
    Position(u8),
    Ferry(u8),
    Other(String),
}

impl ArbName {
    pub fn text(&self) -> String {
        const FERRY: [&str; 8] = [
            "ferry-reason",
            "ferry-stage",
            "ferry-pipeline",
            "ferry-source",
            "ferry-empty-payload",
            "ferry-operation",
            "ferry-namespace",
            "ferry-transform",
        ];
        match self {
            Self::Key => ferry::iggy_link::KEY_HEADER.to_owned(),
            Self::Position(index) => format!("{}-{}", ferry::resume::POSITION_HEADER, index % 4),
            Self::Ferry(index) => FERRY[usize::from(*index) % FERRY.len()].to_owned(),
            Self::Other(name) => name.clone(),
        }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub struct ArbHeader {
    pub name: ArbName,
    pub value: String,
}

impl ArbHeader {
    pub fn header(&self) -> Header {
        Header { name: self.name.text(), value: self.value.clone() }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub enum ArbOperation {
    Insert,
    Update,
    Replace,
    Delete,
    Drop,
    Rename,
    DropDatabase,
    Invalidate,
    Other(String),
}

impl From<ArbOperation> for Operation {
    fn from(operation: ArbOperation) -> Self {
        match operation {
            ArbOperation::Insert => Operation::Insert,
            ArbOperation::Update => Operation::Update,
            ArbOperation::Replace => Operation::Replace,
            ArbOperation::Delete => Operation::Delete,
            ArbOperation::Drop => Operation::Drop,
            ArbOperation::Rename => Operation::Rename,
            ArbOperation::DropDatabase => Operation::DropDatabase,
            ArbOperation::Invalidate => Operation::Invalidate,
            ArbOperation::Other(name) => Operation::Other(name),
        }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub enum ArbOrigin {
    Iggy {
        partition: u32,
        offset: u64,
        high: u64,
        low: u64,
        timestamp: u64,
    },
    Mongodb {
        database: String,
        collection: Option<String>,
        operation: ArbOperation,
        key: Option<String>,
        time: (u32, u32),
    },
    File(u64),
}

impl From<ArbOrigin> for Origin {
    fn from(origin: ArbOrigin) -> Self {
        match origin {
            ArbOrigin::Iggy { partition, offset, high, low, timestamp } => {
                Origin::Iggy(IggyPosition { partition, offset, message_id: MessageId { high, low }, timestamp })
            }
            ArbOrigin::Mongodb { database, collection, operation, key, time } => Origin::Mongodb(MongodbChange {
                namespace: Namespace { database, collection },
                operation: operation.into(),
                document_key: key,
                cluster_time: ClusterTime { seconds: time.0, increment: time.1 },
            }),
            ArbOrigin::File(line) => Origin::File(line),
        }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub enum ArbSource {
    Iggy { stream: String, topic: String },
    Mongodb,
    File,
}

impl From<ArbSource> for BatchSource {
    fn from(source: ArbSource) -> Self {
        match source {
            ArbSource::Iggy { stream, topic } => BatchSource::Iggy(IggyTopic { stream, topic }),
            ArbSource::Mongodb => BatchSource::Mongodb,
            ArbSource::File => BatchSource::File,
        }
    }
}

/// A payload: raw bytes, or JSON or BSON built from a document, so both
/// the encoders' error paths and their success paths are reached.
#[derive(Debug, Clone, Arbitrary)]
pub enum ArbPayload {
    Raw(Vec<u8>),
    Json(ArbDocument),
    Bson(ArbDocument),
}

impl ArbPayload {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Raw(bytes) => bytes.clone(),
            Self::Json(document) => Bson::Document(document.0.clone()).into_relaxed_extjson().to_string().into_bytes(),
            Self::Bson(document) => document.0.to_vec().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub struct ArbRecord {
    pub payload: ArbPayload,
    pub encoding: ArbEncoding,
    pub key: Option<Vec<u8>>,
    pub headers: Option<Vec<ArbHeader>>,
    pub timestamp: u64,
    pub origin: ArbOrigin,
}

impl ArbRecord {
    pub fn record(&self) -> Record {
        Record {
            payload: self.payload.bytes(),
            encoding: self.encoding.into(),
            key: self.key.clone(),
            headers: self.headers.as_ref().map(|headers| headers.iter().map(ArbHeader::header).collect()),
            timestamp: self.timestamp,
            origin: self.origin.clone().into(),
        }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub struct ArbBatch {
    pub source: ArbSource,
    pub records: Vec<ArbRecord>,
}

impl ArbBatch {
    pub fn batch(&self) -> Batch {
        Batch { source: self.source.clone().into(), records: self.records.iter().map(ArbRecord::record).collect() }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub enum ArbWrite {
    Insert,
    Upsert(Vec<String>),
    Replace(Vec<String>),
    Delete(Vec<String>),
}

impl From<ArbWrite> for Write {
    fn from(write: ArbWrite) -> Self {
        match write {
            ArbWrite::Insert => Write::Insert,
            ArbWrite::Upsert(key) => Write::Upsert(key),
            ArbWrite::Replace(key) => Write::Replace(key),
            ArbWrite::Delete(key) => Write::Delete(key),
        }
    }
}

/// One output as a guest may return it: any bytes, any routing.
#[derive(Debug, Clone, Arbitrary)]
pub struct ArbOutput {
    pub payload: ArbPayload,
    pub encoding: ArbEncoding,
    pub collection: Option<String>,
    pub write: Option<ArbWrite>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<ArbHeader>,
}

impl From<ArbOutput> for Output {
    fn from(output: ArbOutput) -> Self {
        Output {
            payload: output.payload.bytes(),
            encoding: output.encoding.into(),
            collection: output.collection,
            write: output.write.map(Write::from),
            key: output.key,
            headers: output.headers.iter().map(ArbHeader::header).collect(),
        }
    }
}

#[derive(Debug, Clone, Arbitrary)]
pub enum ArbOutcome {
    Drop,
    Emit(ArbOutput),
    EmitMany(Vec<ArbOutput>),
    Fail(String),
}

impl From<ArbOutcome> for Outcome {
    fn from(outcome: ArbOutcome) -> Self {
        match outcome {
            ArbOutcome::Drop => Outcome::Drop,
            ArbOutcome::Emit(output) => Outcome::Emit(output.into()),
            ArbOutcome::EmitMany(outputs) => Outcome::EmitMany(outputs.into_iter().map(Output::from).collect()),
            ArbOutcome::Fail(reason) => Outcome::Fail(reason),
        }
    }
}

/// A document of every BSON type Ferry can meet (bar DBPointer, which
/// bson cannot build; the byte-level modes reach it).
#[derive(Debug, Clone)]
pub struct ArbDocument(pub Document);

impl<'a> Arbitrary<'a> for ArbDocument {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        document(u, 0).map(Self)
    }
}

fn document(u: &mut Unstructured<'_>, depth: usize) -> Result<Document> {
    let mut document = Document::new();
    let fields = if depth >= MAX_DEPTH { 0 } else { u.int_in_range(0..=6)? };
    for _ in 0..fields {
        let key = key(u)?;
        document.insert(key, value(u, depth + 1)?);
    }
    Ok(document)
}

/// Keys: mostly the ones change events and Extended JSON use, so wrapper
/// and event fields turn up; keys with a NUL byte are not BSON.
fn key(u: &mut Unstructured<'_>) -> Result<String> {
    const KNOWN: [&str; 14] = [
        "_id",
        "_data",
        "operationType",
        "clusterTime",
        "wallTime",
        "ns",
        "db",
        "coll",
        "documentKey",
        "fullDocument",
        "$date",
        "$oid",
        "$numberLong",
        "a",
    ];
    if u.ratio(2, 3)? {
        return Ok(KNOWN[u.choose_index(KNOWN.len())?].to_owned());
    }
    let key: String = u.arbitrary()?;
    Ok(key.replace('\0', ""))
}

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let text: String = u.arbitrary()?;
    Ok(text.replace('\0', ""))
}

fn value(u: &mut Unstructured<'_>, depth: usize) -> Result<Bson> {
    Ok(match u.int_in_range(0..=21)? {
        0 => Bson::Double(u.arbitrary()?),
        1 => Bson::String(u.arbitrary()?),
        2 => {
            let items = if depth >= MAX_DEPTH { 0 } else { u.int_in_range(0..=4)? };
            Bson::Array((0..items).map(|_| value(u, depth + 1)).collect::<Result<_>>()?)
        }
        3 => Bson::Document(document(u, depth)?),
        4 => Bson::Boolean(u.arbitrary()?),
        5 => Bson::Null,
        6 => {
            let (pattern, options) = (text(u)?, text(u)?);
            match (pattern.try_into(), options.try_into()) {
                (Ok(pattern), Ok(options)) => Bson::RegularExpression(Regex { pattern, options }),
                _ => Bson::Null,
            }
        }
        7 => Bson::JavaScriptCode(u.arbitrary()?),
        8 => {
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code: u.arbitrary()?, scope: document(u, depth)? })
        }
        9 => Bson::Int32(u.arbitrary()?),
        10 => Bson::Int64(u.arbitrary()?),
        11 => Bson::Timestamp(Timestamp { time: u.arbitrary()?, increment: u.arbitrary()? }),
        12 => Bson::Binary(Binary { subtype: subtype(u)?, bytes: u.arbitrary()? }),
        13 => Bson::ObjectId(bson::oid::ObjectId::from_bytes(u.arbitrary()?)),
        14 => Bson::DateTime(bson::DateTime::from_millis(u.arbitrary()?)),
        15 => Bson::Symbol(u.arbitrary()?),
        16 => Bson::Decimal128(bson::Decimal128::from_bytes(u.arbitrary()?)),
        17 => Bson::Undefined,
        18 => Bson::MaxKey,
        19 => Bson::MinKey,
        // Dates and numbers near the edges Ferry's own writers special-case.
        20 => Bson::DateTime(bson::DateTime::from_millis(
            [0, -1, 253_402_300_799_999, 253_402_300_800_000, i64::MAX, i64::MIN][u.choose_index(6)?],
        )),
        _ => Bson::Double([0.0, -0.0, f64::NAN, f64::INFINITY, 1e300, 5e-324][u.choose_index(6)?]),
    })
}

fn subtype(u: &mut Unstructured<'_>) -> Result<BinarySubtype> {
    Ok(match u.int_in_range(0..=5)? {
        0 => BinarySubtype::Generic,
        1 => BinarySubtype::Function,
        2 => BinarySubtype::Uuid,
        3 => BinarySubtype::Md5,
        4 => BinarySubtype::Encrypted,
        _ => BinarySubtype::UserDefined(u.int_in_range(0x80..=0xFF)?),
    })
}

/// Whether two documents hold the same values: canonical Extended JSON
/// compares NaNs as text and fields as a map.
pub fn same(a: &Document, b: &Document) -> bool {
    Bson::Document(a.clone()).into_canonical_extjson() == Bson::Document(b.clone()).into_canonical_extjson()
}

/// The BSON document a fuzz input stands for: an input starting with an
/// even byte is the document's own bytes (seeds are real documents); with
/// an odd one, the rest builds a document of every type.
pub fn bson_input(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    if mode % 2 == 0 {
        return Some(rest.to_vec());
    }
    let document: ArbDocument = Unstructured::new(rest).arbitrary().ok()?;
    document.0.to_vec().ok()
}

/// Whether any (sub)document's first key starts with `$`: such a document
/// reads back through `json_to_bson` as an Extended JSON wrapper, not as
/// itself (JSON cannot tell them apart).
pub fn has_dollar_key(document: &Document) -> bool {
    dollar_keys(document, true)
}

/// Whether any (sub)document has a key starting with `$`: bson's own
/// Extended JSON reader takes any such object for a wrapper.
pub fn has_any_dollar_key(document: &Document) -> bool {
    dollar_keys(document, false)
}

fn dollar_keys(document: &Document, first_only: bool) -> bool {
    let mut keys = document.keys().take(if first_only { 1 } else { usize::MAX });
    keys.any(|key| key.starts_with('$')) || document.values().any(|value| dollar_inside(value, first_only))
}

fn dollar_inside(value: &Bson, first_only: bool) -> bool {
    match value {
        Bson::Document(document) => dollar_keys(document, first_only),
        Bson::Array(items) => items.iter().any(|item| dollar_inside(item, first_only)),
        // A scope is read back by bson's reader, which takes any object
        // with a `$` key for a wrapper.
        Bson::JavaScriptCodeWithScope(code) => dollar_keys(&code.scope, false),
        _ => false,
    }
}

/// Whether any value is a date past the year 9999, which bson's own
/// relaxed Extended JSON saturates to 9999-12-31 (Ferry writes it exactly).
pub fn has_far_date(document: &Document) -> bool {
    document.values().any(far_date_inside)
}

fn far_date_inside(value: &Bson) -> bool {
    match value {
        Bson::DateTime(date) => date.timestamp_millis() > 253_402_300_799_999,
        Bson::Document(document) => has_far_date(document),
        Bson::Array(items) => items.iter().any(far_date_inside),
        Bson::JavaScriptCodeWithScope(code) => has_far_date(&code.scope),
        _ => false,
    }
}
