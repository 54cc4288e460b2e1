//! The self-healing jobs and their one name each: the schedules' input (`{"job": "drift-repair"}` in
//! template.yaml), the retry worker's dispatch and `openmeet-local`'s commands all read it from here. A leaf module.

use std::fmt;
use std::str::FromStr;

/// A scheduled self-healing job (README "Self-healing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Job {
    /// Compare managed rooms with their recorded intent and repair the drift (`domain::drift::repair`).
    DriftRepair,
    /// Archive and purge event rooms past their retention (`domain::retention`).
    Retention,
    /// Post the event reminders that are due (`domain::reminders`).
    Reminders,
    /// Delete expired records DynamoDB's TTL has not removed yet (`domain::housekeeping`).
    SweepExpired,
}

impl Job {
    pub const ALL: [Job; 4] = [Job::DriftRepair, Job::Retention, Job::Reminders, Job::SweepExpired];

    /// The job's one name: a schedule's `job`, the command's name.
    pub const fn name(self) -> &'static str {
        match self {
            Job::DriftRepair => "drift-repair",
            Job::Retention => "retention",
            Job::Reminders => "reminders",
            Job::SweepExpired => "sweep-expired",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no job's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownJob(pub String);

impl fmt::Display for UnknownJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Job::ALL.iter().map(|job| job.name()).collect();
        write!(f, "unknown job {:?} (one of: {})", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownJob {}

impl FromStr for Job {
    type Err = UnknownJob;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Job::ALL.into_iter().find(|job| job.name() == name).ok_or_else(|| UnknownJob(name.to_owned()))
    }
}

impl TryFrom<String> for Job {
    type Error = UnknownJob;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<Job> for &'static str {
    fn from(job: Job) -> Self {
        job.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_reads_back_from_its_name_and_only_that() {
        for job in Job::ALL {
            assert_eq!(job.name().parse::<Job>(), Ok(job));
            assert_eq!(serde_json::to_value(job).ok(), Some(serde_json::Value::from(job.name())));
        }
        // The spelling openmeet-local once used for the drift pass is no job's.
        assert_eq!("repair-drift".parse::<Job>(), Err(UnknownJob("repair-drift".into())));
        assert!(serde_json::from_str::<Job>(r#""repair-drift""#).is_err());
        let error = UnknownJob("x".into()).to_string();
        assert!(Job::ALL.iter().all(|job| error.contains(job.name())), "{error}");
    }
}
