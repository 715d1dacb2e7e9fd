//! The `clarify_msgs` interfaces. The comments in `msg/msg/*.msg` and `msg/srv/*.srv`
//! describe each field; the doc comments here repeat only units and encodings.

use thiserror::Error;

use super::{Header, Time, ros_message, ros_service};
use crate::answer::Answer;

ros_message! {
    /// One trajectory segment of a stored episode.
    #[derive(Default, Copy, Eq, Hash)]
    pub struct SegmentRef = "clarify_msgs" / "msg" / "SegmentRef" {
        /// Row id of the episode in the segment store.
        pub episode_id: i64,
        /// First step within the episode, 0-based.
        pub start_step: u32,
        /// Number of steps.
        pub length_steps: u32,
    }
}

impl From<crate::store::SegmentRef> for SegmentRef {
    fn from(segment: crate::store::SegmentRef) -> Self {
        // Segment starts and lengths are step counts of one episode, far below u32::MAX.
        Self {
            episode_id: segment.episode.get(),
            start_step: u32::try_from(segment.start).unwrap_or(u32::MAX),
            length_steps: u32::try_from(segment.length).unwrap_or(u32::MAX),
        }
    }
}

ros_message! {
    /// One control step of a robot.
    #[derive(Default)]
    pub struct Transition = "clarify_msgs" / "msg" / "Transition" {
        /// `stamp` is the time of the observation.
        pub header: Header,
        /// Episode counter chosen by the publisher.
        pub episode_id: u64,
        /// Step index within the episode, 0-based.
        pub step: u32,
        /// Observation vector.
        pub observation: Vec<f32>,
        /// Action applied after the observation.
        pub action: Vec<f32>,
        /// Task reward, meaningful only when `has_reward` is set.
        pub reward: f32,
        /// Whether `reward` contains a reward.
        pub has_reward: bool,
        /// The task ended at this step.
        pub terminated: bool,
        /// A time limit cut the episode at this step (not a task end).
        pub truncated: bool,
    }
}

ros_message! {
    /// A preference query with the step data of both segments.
    #[derive(Default)]
    pub struct PreferenceQuery = "clarify_msgs" / "msg" / "PreferenceQuery" {
        /// Creation time.
        pub stamp: Time,
        /// Row id of the query in the segment store.
        pub query_id: i64,
        /// Segment shown on the left.
        pub left: SegmentRef,
        /// Segment shown on the right.
        pub right: SegmentRef,
        /// Observation channels per step.
        pub observation_dim: u32,
        /// Action channels per step.
        pub action_dim: u32,
        /// `observation_dim` names, or empty.
        pub observation_names: Vec<String>,
        /// `action_dim` names, or empty.
        pub action_names: Vec<String>,
        /// Time between steps in seconds, 0 when unknown.
        pub step_period_sec: f32,
        /// Row-major `left.length_steps × observation_dim` values.
        pub left_observations: Vec<f32>,
        /// Row-major `left.length_steps × action_dim` values.
        pub left_actions: Vec<f32>,
        /// Row-major `right.length_steps × observation_dim` values.
        pub right_observations: Vec<f32>,
        /// Row-major `right.length_steps × action_dim` values.
        pub right_actions: Vec<f32>,
        /// Selection method: `clarify`, `disagreement` or `random`.
        pub selector: String,
        /// Encoder version the selector used, empty when none.
        pub encoder_version: String,
        /// Answer deadline; zero means none.
        pub expires_at: Time,
    }
}

/// Error for a [`PreferenceQuery`] whose step data does not match its dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "query {query_id}: field {field} has {actual} values, expected {expected} \
     (steps × channels from the segment length and the declared dimension)"
)]
pub struct QueryShapeError {
    /// The query's id.
    pub query_id: i64,
    /// Name of the mismatched field.
    pub field: &'static str,
    /// Number of values the field holds.
    pub actual: usize,
    /// Number of values the segment length and dimension require.
    pub expected: usize,
}

impl PreferenceQuery {
    /// Checks that the four step-data arrays and the channel name lists have the lengths
    /// that the segment lengths and the declared dimensions require.
    pub fn check_shape(&self) -> Result<(), QueryShapeError> {
        let observation_dim = self.observation_dim as usize;
        let action_dim = self.action_dim as usize;
        let left_steps = self.left.length_steps as usize;
        let right_steps = self.right.length_steps as usize;
        let arrays = [
            (
                "left_observations",
                self.left_observations.len(),
                left_steps * observation_dim,
            ),
            (
                "left_actions",
                self.left_actions.len(),
                left_steps * action_dim,
            ),
            (
                "right_observations",
                self.right_observations.len(),
                right_steps * observation_dim,
            ),
            (
                "right_actions",
                self.right_actions.len(),
                right_steps * action_dim,
            ),
        ];
        for (field, actual, expected) in arrays {
            if actual != expected {
                return Err(self.shape_error(field, actual, expected));
            }
        }

        let names = [
            (
                "observation_names",
                self.observation_names.len(),
                observation_dim,
            ),
            ("action_names", self.action_names.len(), action_dim),
        ];
        for (field, actual, expected) in names {
            // An empty list means the channels have no names.
            if actual != 0 && actual != expected {
                return Err(self.shape_error(field, actual, expected));
            }
        }
        Ok(())
    }

    fn shape_error(&self, field: &'static str, actual: usize, expected: usize) -> QueryShapeError {
        QueryShapeError {
            query_id: self.query_id,
            field,
            actual,
            expected,
        }
    }
}

ros_message! {
    /// An operator's answer to a preference query.
    #[derive(Default)]
    pub struct PreferenceAnswer = "clarify_msgs" / "msg" / "PreferenceAnswer" {
        /// Time of the answer.
        pub stamp: Time,
        /// The answered query's id.
        pub query_id: i64,
        /// One of the answer constants; 0 is invalid.
        pub answer: u8,
        /// Operator or interface name.
        pub operator_id: String,
        /// Time from showing the query to the answer, in seconds.
        pub response_time_sec: f32,
    }
    constants {
        /// The left (first) segment is better.
        LEFT: u8 = 1;
        /// The right (second) segment is better.
        RIGHT: u8 = 2;
        /// The operator cannot see a difference.
        CANT_TELL: u8 = 3;
        /// The operator gave no information.
        SKIP: u8 = 4;
    }
}

/// Error for an answer field value that is none of the answer constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "invalid answer value {value} in PreferenceAnswer: expected LEFT (1), RIGHT (2), \
     CANT_TELL (3) or SKIP (4)"
)]
pub struct InvalidAnswerValue {
    /// The rejected value.
    pub value: u8,
}

impl PreferenceAnswer {
    /// Returns the answer code of `answer`.
    pub fn code(answer: Answer) -> u8 {
        match answer {
            Answer::Left => Self::LEFT,
            Answer::Right => Self::RIGHT,
            Answer::CantTell => Self::CANT_TELL,
            Answer::Skip => Self::SKIP,
        }
    }

    /// Decodes the `answer` field.
    pub fn decoded_answer(&self) -> Result<Answer, InvalidAnswerValue> {
        match self.answer {
            Self::LEFT => Ok(Answer::Left),
            Self::RIGHT => Ok(Answer::Right),
            Self::CANT_TELL => Ok(Answer::CantTell),
            Self::SKIP => Ok(Answer::Skip),
            value => Err(InvalidAnswerValue { value }),
        }
    }
}

ros_message! {
    /// Announcement of a switch of the active model set.
    #[derive(Default)]
    pub struct ModelUpdate = "clarify_msgs" / "msg" / "ModelUpdate" {
        /// Time of the switch.
        pub stamp: Time,
        /// Version now active.
        pub version: String,
        /// Version active before, empty when none.
        pub previous_version: String,
        /// One of the reason constants.
        pub reason: u8,
        /// Folder of the model set.
        pub path: String,
        /// Number of answers trained on.
        pub answers_used: u32,
        /// Held-out reward accuracy in [0, 1], NaN when unknown.
        pub reward_accuracy: f32,
    }
    constants {
        /// A training run produced the model set.
        REASON_TRAINED: u8 = 1;
        /// An operator rolled back.
        REASON_ROLLBACK: u8 = 2;
        /// Activated by hand.
        REASON_MANUAL: u8 = 3;
    }
}

ros_message! {
    /// Progress of a training run.
    #[derive(Default)]
    pub struct TrainingStatus = "clarify_msgs" / "msg" / "TrainingStatus" {
        /// Time of the report.
        pub stamp: Time,
        /// Row id of the run, 0 while idle.
        pub run_id: i64,
        /// One of the state constants.
        pub state: u8,
        /// Current stage name.
        pub stage: String,
        /// Done fraction of the stage, in [0, 1].
        pub stage_progress: f32,
        /// Number of answers trained on.
        pub answers_used: u32,
        /// Time since the run started, in seconds.
        pub elapsed_sec: f32,
        /// Error or summary text.
        pub message: String,
    }
    constants {
        /// No run in progress.
        STATE_IDLE: u8 = 0;
        /// A run is in progress.
        STATE_RUNNING: u8 = 1;
        /// The run finished and produced a model set.
        STATE_SUCCEEDED: u8 = 2;
        /// The run failed.
        STATE_FAILED: u8 = 3;
    }
}

ros_message! {
    /// Request of [`SubmitAnswer`].
    #[derive(Default)]
    pub struct SubmitAnswerRequest = "clarify_msgs" / "srv" / "SubmitAnswer_Request" {
        /// The answer to store.
        pub answer: PreferenceAnswer,
    }
}

ros_message! {
    /// Response of [`SubmitAnswer`].
    #[derive(Default)]
    pub struct SubmitAnswerResponse = "clarify_msgs" / "srv" / "SubmitAnswer_Response" {
        /// Whether the answer was stored.
        pub accepted: bool,
        /// Rejection reason, or empty.
        pub message: String,
    }
}

ros_service!(
    /// Stores an operator's answer.
    SubmitAnswer = "clarify_msgs" / "SubmitAnswer" (SubmitAnswerRequest, SubmitAnswerResponse)
);

ros_message! {
    /// Request of [`TriggerRetrain`].
    #[derive(Default)]
    pub struct TriggerRetrainRequest = "clarify_msgs" / "srv" / "TriggerRetrain_Request" {
        /// Reason for the request.
        pub reason: String,
    }
}

ros_message! {
    /// Response of [`TriggerRetrain`].
    #[derive(Default)]
    pub struct TriggerRetrainResponse = "clarify_msgs" / "srv" / "TriggerRetrain_Response" {
        /// Whether a run started.
        pub accepted: bool,
        /// Row id of the started run, or 0.
        pub run_id: i64,
        /// Rejection reason, or empty.
        pub message: String,
    }
}

ros_service!(
    /// Starts a training run.
    TriggerRetrain = "clarify_msgs" / "TriggerRetrain" (TriggerRetrainRequest, TriggerRetrainResponse)
);

ros_message! {
    /// Request of [`RollbackModel`].
    #[derive(Default)]
    pub struct RollbackModelRequest = "clarify_msgs" / "srv" / "RollbackModel_Request" {
        /// Version to activate; empty for the previous one.
        pub version: String,
    }
}

ros_message! {
    /// Response of [`RollbackModel`].
    #[derive(Default)]
    pub struct RollbackModelResponse = "clarify_msgs" / "srv" / "RollbackModel_Response" {
        /// Whether the switch happened.
        pub success: bool,
        /// Version active after the call.
        pub active_version: String,
        /// Failure reason, or empty.
        pub message: String,
    }
}

ros_service!(
    /// Switches back to an earlier model set.
    RollbackModel = "clarify_msgs" / "RollbackModel" (RollbackModelRequest, RollbackModelResponse)
);

ros_message! {
    /// Request of [`SetPolicyEnabled`].
    #[derive(Default)]
    pub struct SetPolicyEnabledRequest = "clarify_msgs" / "srv" / "SetPolicyEnabled_Request" {
        /// Requested state.
        pub enabled: bool,
    }
}

ros_message! {
    /// Response of [`SetPolicyEnabled`].
    #[derive(Default)]
    pub struct SetPolicyEnabledResponse = "clarify_msgs" / "srv" / "SetPolicyEnabled_Response" {
        /// Whether the runner is in the requested state.
        pub success: bool,
        /// State after the call.
        pub enabled: bool,
        /// Failure reason, or empty.
        pub message: String,
    }
}

ros_service!(
    /// Enables or disables the policy runner.
    SetPolicyEnabled = "clarify_msgs" / "SetPolicyEnabled" (SetPolicyEnabledRequest, SetPolicyEnabledResponse)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_codes_round_trip() -> Result<(), InvalidAnswerValue> {
        for answer in Answer::ALL {
            let message = PreferenceAnswer {
                answer: PreferenceAnswer::code(answer),
                ..PreferenceAnswer::default()
            };
            assert_eq!(message.decoded_answer()?, answer);
        }
        Ok(())
    }

    #[test]
    fn unset_answer_value_rejected() {
        let error = PreferenceAnswer::default().decoded_answer().unwrap_err();
        assert_eq!(error.value, 0);
        assert!(error.to_string().contains("CANT_TELL (3)"), "{error}");
    }

    #[test]
    fn query_shape_checks_each_array() {
        let mut query = PreferenceQuery {
            left: SegmentRef {
                length_steps: 2,
                ..SegmentRef::default()
            },
            right: SegmentRef {
                length_steps: 3,
                ..SegmentRef::default()
            },
            observation_dim: 2,
            action_dim: 1,
            left_observations: vec![0.0; 4],
            left_actions: vec![0.0; 2],
            right_observations: vec![0.0; 6],
            right_actions: vec![0.0; 3],
            ..PreferenceQuery::default()
        };
        assert_eq!(query.check_shape(), Ok(()));

        query.action_names = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(query.check_shape().unwrap_err().field, "action_names");

        query.action_names.clear();
        query.right_actions.pop();
        let error = query.check_shape().unwrap_err();
        assert_eq!(error.field, "right_actions");
        assert_eq!((error.actual, error.expected), (2, 3));
    }
}
