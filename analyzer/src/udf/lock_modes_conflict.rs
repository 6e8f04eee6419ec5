//! `lock_modes_conflict(held, wanted)`: whether two heavyweight lock modes
//! conflict, by PostgreSQL's conflict table (lock.c `LockConflicts`, the
//! table of "Conflicting Lock Modes" in the manual). The lock wait queries
//! use it to find who held what another session waited for.

use std::sync::{Arc, LazyLock};

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{DOC_SECTION, result, rows_of, string_arrays};

/// The modes from weakest to strongest; the index + 1 is PostgreSQL's LOCKMODE.
const MODES: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// Bit `j` of `CONFLICTS[i]`: mode `i` conflicts with mode `j` (lock.c).
const CONFLICTS: [u8; 8] = [
    0b1000_0000,
    0b1100_0000,
    0b1111_0000,
    0b1111_1000,
    0b1110_1100,
    0b1111_1100,
    0b1111_1110,
    0b1111_1111,
];

/// Whether `held` and `wanted` conflict; `None` when either is not a mode name.
pub fn modes_conflict(held: &str, wanted: &str) -> Option<bool> {
    let i = MODES.iter().position(|m| *m == held)?;
    let j = MODES.iter().position(|m| *m == wanted)?;
    Some(CONFLICTS[i] & (1 << j) != 0)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LockModesConflict {
    signature: Signature,
}

impl LockModesConflict {
    pub fn new() -> Self {
        LockModesConflict {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION,
        "Whether a lock held in one mode blocks a request for another on the same object, \
         by PostgreSQL's table of conflicting lock modes. NULL when either is NULL or not \
         a mode name.",
        "lock_modes_conflict(held, wanted)",
    )
    .with_sql_example(
        "```sql\n\
         > SELECT lock_modes_conflict('AccessExclusiveLock', 'AccessShareLock');\n\
         true\n\
         > SELECT lock_modes_conflict('RowExclusiveLock', 'RowExclusiveLock');\n\
         false\n\
         ```",
    )
    .with_argument("held", "A mode (locks.mode), e.g. 'RowExclusiveLock'.")
    .with_argument("wanted", "Another mode.")
    .build()
});

impl ScalarUDFImpl for LockModesConflict {
    fn name(&self) -> &str {
        "lock_modes_conflict"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = rows_of(&args.args, args.number_rows);
        let arrays = string_arrays(&args.args, rows)?;
        let [held, wanted] = arrays.as_slice() else {
            return datafusion::common::exec_err!("lock_modes_conflict takes two arguments");
        };
        let out: BooleanArray = held
            .iter()
            .zip(wanted.iter())
            .map(|(h, w)| modes_conflict(h?, w?))
            .collect();
        result(Arc::new(out), scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_symmetric_and_matches_the_manual() {
        for a in MODES {
            for b in MODES {
                assert_eq!(modes_conflict(a, b), modes_conflict(b, a), "{a} {b}");
            }
        }
        let cases = [
            ("AccessShareLock", "AccessExclusiveLock", true),
            ("AccessShareLock", "ExclusiveLock", false),
            ("RowShareLock", "ExclusiveLock", true),
            ("RowExclusiveLock", "RowExclusiveLock", false),
            ("RowExclusiveLock", "ShareLock", true),
            ("ShareUpdateExclusiveLock", "ShareUpdateExclusiveLock", true),
            ("ShareLock", "ShareLock", false),
            ("ShareLock", "RowExclusiveLock", true),
            ("ShareRowExclusiveLock", "ShareRowExclusiveLock", true),
            ("ExclusiveLock", "AccessShareLock", false),
            ("ExclusiveLock", "RowShareLock", true),
            ("AccessExclusiveLock", "AccessShareLock", true),
            // transactionid: waiters ask ShareLock of the owner's ExclusiveLock.
            ("ExclusiveLock", "ShareLock", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(modes_conflict(a, b), Some(want), "{a} {b}");
        }
        let per_mode: Vec<u32> = CONFLICTS.iter().map(|c| c.count_ones()).collect();
        assert_eq!(per_mode, [1, 2, 4, 5, 5, 6, 7, 8]);
        assert_eq!(modes_conflict("NoLock", "ShareLock"), None);
    }
}
