//! A skeleton of an HTTP function: builds the same clients as `shared::App` (AWS config, DynamoDB, KMS, SQS and a
//! reqwest client) and answers every request `200 {}` without using them. What the functions cost beyond it is
//! their own code.

use std::convert::Infallible;

use lambda_http::{Body, Request, Response};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = (
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_kms::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?,
    );
    let clients = &clients;
    lambda_http::run(lambda_http::service_fn(move |_request: Request| async move {
        let _ = clients;
        Ok::<_, Infallible>(
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::Text("{}".into()))
                .unwrap_or_else(|_| Response::new(Body::Empty)),
        )
    }))
    .await
}
