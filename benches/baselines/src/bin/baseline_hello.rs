//! The smallest Lambda: `lambda_runtime` answering every event with `{}`. The floor of size, start-up and memory.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async { Ok::<Value, Error>(json!({})) })).await
}
