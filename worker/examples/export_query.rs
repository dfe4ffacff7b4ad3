//! Prints the worker's unfiltered CSV export as one SQL query, `raw=true` (cells as
//! stored) unless `--neutralised` is given: `bench/export.sh` hands it to `psql \copy`, so
//! the benchmark compares the query the worker runs, not a copy of it that can go stale.

use bounce_worker::store::export::{Cells, csv_query};

fn main() {
    let cells = if std::env::args().any(|a| a == "--neutralised") {
        Cells::Neutralised
    } else {
        Cells::AsStored
    };
    println!(
        "{}",
        csv_query(cells)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
}
