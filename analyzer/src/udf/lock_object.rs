//! `lock_object(lock_type, database_oid, relation_oid, field3, field4)`:
//! the locked object of a `locks` row in words, as `pg_locks` names the
//! fields of each lock type: `relation 16384 (db 5)`, `transactionid 742`,
//! `tuple (0,7) of relation 16384 (db 5)`. Two rows name the same object
//! exactly when their texts are equal, so the text is also a join key.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray, StringArray, UInt32Array};
use arrow::datatypes::{DataType, UInt32Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{DOC_SECTION, result, rows_of, string_arrays};

/// The object named by a lock tag; `None` without a lock type (release_all).
pub fn lock_object(
    lock_type: Option<&str>,
    db: Option<u32>,
    rel: Option<u32>,
    f3: Option<u32>,
    f4: Option<u32>,
) -> Option<String> {
    let lock_type = lock_type?;
    let n = |v: Option<u32>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    let in_db = match db {
        Some(d) => format!(" (db {d})"),
        None => String::new(),
    };
    Some(match lock_type {
        "relation" => format!("relation {}{in_db}", n(rel)),
        "extend" => format!("extension of relation {}{in_db}", n(rel)),
        "page" => format!("page {} of relation {}{in_db}", n(f3), n(rel)),
        "tuple" => format!("tuple ({},{}) of relation {}{in_db}", n(f3), n(f4), n(rel)),
        "transactionid" => format!("transactionid {}", n(f3)),
        "virtualxid" => format!("virtualxid {}/{}", n(f3), n(f4)),
        "spectoken" => format!("spectoken {} of transaction {}", n(f4), n(f3)),
        "frozenid" => format!("frozenid{in_db}"),
        "object" => format!("object {}:{}:{}{in_db}", n(rel), n(f3), n(f4)),
        "advisory" => format!("advisory {}:{}:{}{in_db}", n(rel), n(f3), n(f4)),
        other => {
            let fields: Vec<String> = [db, rel, f3, f4]
                .iter()
                .filter_map(|v| v.map(|v| v.to_string()))
                .collect();
            format!("{other} {}", fields.join(":"))
        }
    })
}

/// Which of (database_oid, relation_oid, field3, field4) [`lock_object`]
/// names for a lock type: rows equal in these fields name one object, so a
/// filter on them finds every row of a set of objects without the text.
pub fn object_fields(lock_type: &str) -> [bool; 4] {
    match lock_type {
        "relation" | "extend" => [true, true, false, false],
        "frozenid" => [true, false, false, false],
        "page" => [true, true, true, false],
        "transactionid" => [false, false, true, false],
        "virtualxid" | "spectoken" => [false, false, true, true],
        _ => [true; 4],
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LockObject {
    signature: Signature,
}

impl LockObject {
    pub fn new() -> Self {
        LockObject {
            signature: Signature::any(5, Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION,
        "The object a heavyweight lock is on, in words, from the tag columns of the locks \
         table: 'relation 16384 (db 5)', 'transactionid 742', 'tuple (0,7) of relation \
         16384 (db 5)', 'advisory 0:42:1 (db 5)'. Equal texts are the same lock tag. NULL \
         when lock_type is NULL (release_all rows).",
        "lock_object(lock_type, database_oid, relation_oid, field3, field4)",
    )
    .with_sql_example(
        "```sql\n\
         > SELECT lock_object(lock_type, database_oid, relation_oid, field3, field4) AS object,\n\
         >        sum(wait_ns) / 1e6 AS wait_ms\n\
         > FROM locks WHERE event = 'wait_end' GROUP BY 1 ORDER BY 2 DESC;\n\
         ```",
    )
    .with_argument(
        "lock_type",
        "locks.lock_type: relation, transactionid, tuple, ...",
    )
    .with_argument("database_oid", "locks.database_oid")
    .with_argument("relation_oid", "locks.relation_oid")
    .with_argument(
        "field3",
        "locks.field3 (the xid of transaction-keyed types)",
    )
    .with_argument("field4", "locks.field4")
    .build()
});

impl ScalarUDFImpl for LockObject {
    fn name(&self) -> &str {
        "lock_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = rows_of(&args.args, args.number_rows);
        let [lock_type, fields @ ..] = args.args.as_slice() else {
            return exec_err!("lock_object takes five arguments");
        };
        if fields.len() != 4 {
            return exec_err!("lock_object takes five arguments");
        }
        let types = string_arrays(std::slice::from_ref(lock_type), rows)?;
        let numbers = fields
            .iter()
            .map(|f| {
                let array = f.to_array(rows)?;
                let cast = arrow::compute::cast(&array, &DataType::UInt32)?;
                Ok(cast.as_primitive::<UInt32Type>().clone())
            })
            .collect::<Result<Vec<UInt32Array>>>()?;
        let get = |a: &UInt32Array, i: usize| a.is_valid(i).then(|| a.value(i));
        let out: StringArray = (0..rows)
            .map(|i| {
                let t = types[0].is_valid(i).then(|| types[0].value(i));
                lock_object(
                    t,
                    get(&numbers[0], i),
                    get(&numbers[1], i),
                    get(&numbers[2], i),
                    get(&numbers[3], i),
                )
            })
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
    fn objects_in_words() {
        let cases = [
            (
                ("relation", Some(5), Some(16384), Some(0), Some(0)),
                "relation 16384 (db 5)",
            ),
            (
                ("tuple", Some(5), Some(16384), Some(0), Some(7)),
                "tuple (0,7) of relation 16384 (db 5)",
            ),
            (
                ("transactionid", None, None, Some(742), Some(0)),
                "transactionid 742",
            ),
            (
                ("virtualxid", None, None, Some(3), Some(45)),
                "virtualxid 3/45",
            ),
            (
                ("advisory", Some(5), Some(0), Some(42), Some(1)),
                "advisory 0:42:1 (db 5)",
            ),
            (
                ("page", Some(5), Some(16384), Some(9), Some(0)),
                "page 9 of relation 16384 (db 5)",
            ),
            (("userlock", Some(1), Some(2), None, None), "userlock 1:2"),
            (("relation", Some(5), None, None, None), "relation ? (db 5)"),
        ];
        for ((t, db, rel, f3, f4), want) in cases {
            assert_eq!(lock_object(Some(t), db, rel, f3, f4).as_deref(), Some(want));
        }
        assert_eq!(lock_object(None, Some(1), Some(2), None, None), None);
    }

    /// The text changes with each field `object_fields` names and with no other.
    #[test]
    fn object_fields_are_the_fields_named() {
        let types = [
            "relation",
            "extend",
            "frozenid",
            "page",
            "tuple",
            "transactionid",
            "virtualxid",
            "spectoken",
            "object",
            "advisory",
            "userlock",
        ];
        for t in types {
            let base = [Some(1), Some(2), Some(3), Some(4)];
            let text = |f: [Option<u32>; 4]| lock_object(Some(t), f[0], f[1], f[2], f[3]);
            for (i, named) in object_fields(t).into_iter().enumerate() {
                let mut other = base;
                other[i] = Some(99);
                assert_eq!(text(other) != text(base), named, "{t} field {i}");
            }
        }
    }
}
