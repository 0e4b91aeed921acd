//! The mover's row copy, without a stamp: cursors, the import stream, the copy's outcome.

use super::*;

async fn later<T>(ms: u64, value: T) -> T {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    value
}

#[tokio::test]
async fn a_target_that_ends_the_call_is_judged_by_its_answer_not_by_the_closed_queue() {
    // The target refuses (NotOwner: its range moved) and drops the request stream; the
    // pump sees the queue closed at once, while the refusal is still being classified
    // (a map refresh). The copy must be retried, not failed.
    let pump = async { Err(anyhow::Error::new(TargetStopped)) };
    let import = later(50, Err(ImportFailure::Retry("NotOwner".into())));
    let outcome = copy_outcome(pump, import).await;
    assert!(
        matches!(&outcome, Err(ImportFailure::Retry(why)) if why == "NotOwner"),
        "{}",
        describe(&outcome)
    );
    let pump = async { Err(anyhow::Error::new(TargetStopped)) };
    let import = later(
        50,
        Err(ImportFailure::Fail(anyhow!("InvalidArgument: md5"))),
    );
    let outcome = copy_outcome(pump, import).await;
    assert!(describe(&outcome).contains("md5"), "{}", describe(&outcome));
}

#[tokio::test]
async fn a_source_failure_ends_the_copy_without_waiting_for_the_target() {
    let pump = later(10, Err(anyhow!("ReadRow's bytes: connection reset")));
    let import = std::future::pending();
    let outcome = tokio::time::timeout(Duration::from_secs(5), copy_outcome(pump, import))
        .await
        .expect("the import is dropped, not awaited");
    assert!(
        describe(&outcome).contains("connection reset"),
        "{}",
        describe(&outcome)
    );
}

#[tokio::test]
async fn a_whole_row_is_judged_by_the_target_s_answer() {
    let outcome = copy_outcome(async { Ok(()) }, later(20, Ok(()))).await;
    assert!(outcome.is_ok());
    let refused = later(20, Err(ImportFailure::Retry("SlowDown".into())));
    let outcome = copy_outcome(async { Ok(()) }, refused).await;
    assert!(matches!(outcome, Err(ImportFailure::Retry(_))));
}

fn describe(outcome: &Result<(), ImportFailure>) -> String {
    match outcome {
        Ok(()) => "copied".into(),
        Err(ImportFailure::Retry(why)) => format!("retry: {why}"),
        Err(ImportFailure::Fail(err)) => format!("fail: {err:#}"),
    }
}
