//! The server's Prometheus text (`/metrics`), fetched and summed: what the pipeline benchmark
//! reads from the server it drives.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::LoadtestError;

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Scrape(String);

impl Scrape {
    pub async fn fetch(addr: SocketAddr) -> Result<Scrape, LoadtestError> {
        let fail = |e: std::io::Error| LoadtestError::Connect {
            host: format!("http://{addr}/metrics"),
            reason: e.to_string(),
        };
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(fail)?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(fail)?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.map_err(fail)?;
        if !text.starts_with("HTTP/1.1 200") {
            let status = text.lines().next().unwrap_or("").to_string();
            return Err(LoadtestError::Connect {
                host: format!("http://{addr}/metrics"),
                reason: status,
            });
        }
        Ok(Scrape(text))
    }

    /// Sum of the samples whose series (name and labels) starts with `prefix`.
    pub fn sum(&self, prefix: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_series_that_match() {
        let text = "# TYPE x gauge\nxling_encoder_busy_seconds{encoder_instance=\"0\"} 1.5\n\
                    xling_encoder_busy_seconds{encoder_instance=\"1\"} 2\nxling_batch_size_sum 40\n\
                    xling_batch_size_count 4\n";
        let scrape = Scrape(text.into());
        assert_eq!(
            scrape.sum("xling_encoder_busy_seconds{encoder_instance=\"1\"}"),
            2.0
        );
        assert_eq!(scrape.sum("xling_encoder_busy_seconds{"), 3.5);
        assert_eq!(scrape.sum("xling_batch_size_sum"), 40.0);
        assert_eq!(scrape.sum("xling_missing"), 0.0);
    }
}
