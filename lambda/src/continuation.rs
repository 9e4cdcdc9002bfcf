//! Continuations: an object the invocation's deadline cut off goes on in a new message instead
//! of being redelivered, so a large object finishes however many invocations it takes, without
//! spending its message's receives (`maxReceiveCount` caps failures, not work).
//!
//! The runner reports each object message cut off after some progress with where it goes on
//! (a [`Resume`]: the object, its items done, the byte offset, line and ETag to read on from).
//! The function sends a copy of the message to the queue it came from, with the resume in its
//! `weir-resume` attribute, and only once SQS has taken it reports the original as done. The
//! copy is a new message: it reads on with a ranged GET where the cut came. If the send fails
//! the original is reported failed, and its redelivery resumes from the checkpoint as before.
//! A unit that made no progress is never continued (it is failed), so this cannot loop.
//!
//! Only a standard queue named by the bindings document (`input`) is continued: a FIFO queue's
//! copy would go behind the group's later messages.

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use weir_host::aws::describe;
use weir_host::pipeline::deployment::InputBinding;
use weir_host::source::lambda::{RESUME_ATTRIBUTE, SqsMessage};
use weir_host::source::resume::Resume;

/// How long a continuation's SendMessage may take (it runs in the time kept to answer).
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `message` can be continued on `input`: it came from that queue, a standard one.
pub fn applies(input: &InputBinding, message: &SqsMessage) -> bool {
    message.event_source_arn.as_deref() == Some(input.queue_arn.as_str()) && !input.queue_arn.ends_with(".fifo")
}

/// Sends the continuation of `message` to `input`: its body and string attributes, and where
/// to go on. Returns the new message's id.
pub async fn send(
    sqs: &aws_sdk_sqs::Client,
    input: &InputBinding,
    message: &SqsMessage,
    at: &Resume,
) -> Result<String, String> {
    let body = message.body.clone().ok_or("the message has no body")?;
    let resume = serde_json::to_string(at).map_err(|e| e.to_string())?;
    let mut request = sqs.send_message().queue_url(&input.queue_url).message_body(body);
    let string = |value: &str| MessageAttributeValue::builder().data_type("String").string_value(value).build();
    for (name, value) in &message.message_attributes {
        if name == RESUME_ATTRIBUTE {
            continue;
        }
        if let (Some(v), Some(kind)) = (&value.string_value, &value.data_type) {
            let attribute = MessageAttributeValue::builder().data_type(kind).string_value(v).build();
            request = request.message_attributes(name, attribute.map_err(|e| e.to_string())?);
        }
    }
    let request = request.message_attributes(RESUME_ATTRIBUTE, string(&resume).map_err(|e| e.to_string())?);
    match tokio::time::timeout(SEND_TIMEOUT, request.send()).await {
        Ok(Ok(out)) => Ok(out.message_id().unwrap_or_default().to_string()),
        Ok(Err(e)) => Err(format!("SendMessage: {}", describe(&e))),
        Err(_) => Err(format!("SendMessage did not answer within {SEND_TIMEOUT:?}")),
    }
}
