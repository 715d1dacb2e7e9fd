//! Gamepad answers: `sensor_msgs/Joy` button presses mapped to answers.

use super::config::JoyButtons;
use crate::answer::Answer;

/// Turns Joy messages into answers, one per button press.
///
/// A press is a rising edge: the button reads 0 (or is missing) in one message and non-zero
/// in the next. Holding a button gives one answer, and the first message after start counts
/// a held button as a press only when it was not already held, so a button held while the
/// node starts answers nothing until it is released and pressed again.
#[derive(Clone, Debug)]
pub struct JoyMapper {
    buttons: [(usize, Answer); 4],
    previous: Option<Vec<bool>>,
}

impl JoyMapper {
    /// Creates a mapper for the button indices of `buttons`.
    pub fn new(buttons: &JoyButtons) -> Self {
        Self {
            buttons: [
                (buttons.left, Answer::Left),
                (buttons.right, Answer::Right),
                (buttons.cant_tell, Answer::CantTell),
                (buttons.skip, Answer::Skip),
            ],
            previous: None,
        }
    }

    /// Reads one Joy `buttons` array and returns the answers whose buttons were pressed
    /// since the previous message, in the order left, right, can't tell, skip.
    pub fn update(&mut self, states: &[i32]) -> Vec<Answer> {
        let pressed: Vec<bool> = states.iter().map(|&state| state != 0).collect();
        let held = |states: &[bool], index: usize| states.get(index).copied().unwrap_or(false);
        let answers = match &self.previous {
            // The first message only records which buttons are held.
            None => Vec::new(),
            Some(previous) => self
                .buttons
                .iter()
                .filter(|(index, _)| held(&pressed, *index) && !held(previous, *index))
                .map(|&(_, answer)| answer)
                .collect(),
        };
        self.previous = Some(pressed);
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper() -> JoyMapper {
        JoyMapper::new(&JoyButtons {
            left: 0,
            right: 1,
            cant_tell: 2,
            skip: 3,
            ..JoyButtons::default()
        })
    }

    #[test]
    fn press_answers_once_while_held() {
        let mut joy = mapper();
        assert!(joy.update(&[0, 0, 0, 0]).is_empty());

        assert_eq!(joy.update(&[1, 0, 0, 0]), [Answer::Left]);
        assert!(joy.update(&[1, 0, 0, 0]).is_empty());
        assert!(joy.update(&[0, 0, 0, 0]).is_empty());
        assert_eq!(joy.update(&[1, 0, 0, 0]), [Answer::Left]);
    }

    #[test]
    fn each_button_maps_to_its_answer() {
        let mut joy = mapper();
        joy.update(&[0, 0, 0, 0]);

        assert_eq!(joy.update(&[0, 1, 0, 0]), [Answer::Right]);
        assert_eq!(joy.update(&[0, 0, 1, 0]), [Answer::CantTell]);
        assert_eq!(joy.update(&[0, 0, 0, 1]), [Answer::Skip]);
        assert_eq!(
            joy.update(&[1, 1, 0, 0]),
            [Answer::Left, Answer::Right],
            "two new presses in one message"
        );
    }

    #[test]
    fn button_held_at_start_needs_release() {
        let mut joy = mapper();

        assert!(joy.update(&[1, 0, 0, 0]).is_empty());
        assert!(joy.update(&[1, 0, 0, 0]).is_empty());
        assert!(joy.update(&[0, 0, 0, 0]).is_empty());
        assert_eq!(joy.update(&[1, 0, 0, 0]), [Answer::Left]);
    }

    #[test]
    fn short_button_array_reads_as_released() {
        let mut joy = mapper();
        joy.update(&[0, 0, 0, 0]);

        assert!(joy.update(&[0, 0]).is_empty());
        assert_eq!(joy.update(&[0, 0, 0, 5]), [Answer::Skip]);
        assert!(joy.update(&[]).is_empty());
        assert_eq!(joy.update(&[0, 0, 0, 1]), [Answer::Skip]);
    }
}
