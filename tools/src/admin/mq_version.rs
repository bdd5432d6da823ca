//! `MQVersion.Version` names by ordinal, as Java's `MQVersion.getVersionDesc` prints them.

/// The 3.0.0 pre-releases, ordinals 0 to 15.
const PRE_RELEASES: [&str; 16] = [
    "V3_0_0_SNAPSHOT",
    "V3_0_0_ALPHA1",
    "V3_0_0_BETA1",
    "V3_0_0_BETA2",
    "V3_0_0_BETA3",
    "V3_0_0_BETA4",
    "V3_0_0_BETA5",
    "V3_0_0_BETA6_SNAPSHOT",
    "V3_0_0_BETA6",
    "V3_0_0_BETA7_SNAPSHOT",
    "V3_0_0_BETA7",
    "V3_0_0_BETA8_SNAPSHOT",
    "V3_0_0_BETA8",
    "V3_0_0_BETA9_SNAPSHOT",
    "V3_0_0_BETA9",
    "V3_0_0_FINAL",
];

/// Every release after 3.0.0 as `(major, minor, patch)`, in ordinal order. Each takes two
/// ordinals, `V<x>_SNAPSHOT` then `V<x>`, from 16 on; `HIGHER_VERSION` follows V5_9_9.
fn releases() -> impl Iterator<Item = (u32, u32, u32)> {
    [(3, 0, 1, 15), (3, 1, 0, 9), (3, 2, 0, 9)]
        .into_iter()
        .chain((3..=9).map(|minor| (3, minor, 1, 9)))
        .chain((0..=9).map(|minor| (4, minor, 0, 9)))
        .chain((0..=9).map(|minor| (5, minor, 0, 9)))
        .flat_map(|(major, minor, first, last)| (first..=last).map(move |p| (major, minor, p)))
}

/// `MQVersion.getVersionDesc`: the name of version `value`; anything past the table is
/// `HIGHER_VERSION`, as Java clamps to the last name.
pub fn version_desc(value: i32) -> String {
    let value = value.max(0) as usize;
    if let Some(name) = PRE_RELEASES.get(value) {
        return name.to_string();
    }
    let index = value - PRE_RELEASES.len();
    match releases().nth(index / 2) {
        Some((major, minor, patch)) => {
            let snapshot = if index & 1 == 0 { "_SNAPSHOT" } else { "" };
            format!("V{major}_{minor}_{patch}{snapshot}")
        }
        None => "HIGHER_VERSION".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_java_ordinals() {
        for (ordinal, name) in [
            (0, "V3_0_0_SNAPSHOT"),
            (15, "V3_0_0_FINAL"),
            (16, "V3_0_1_SNAPSHOT"),
            (37, "V3_0_11"),
            (401, "V4_9_4"),
            (413, "V5_0_0"),
            (479, "V5_3_3"),
            (611, "V5_9_9"),
            (612, "HIGHER_VERSION"),
            (100_000, "HIGHER_VERSION"),
        ] {
            assert_eq!(version_desc(ordinal), name, "ordinal {ordinal}");
        }
    }
}
