//! The `clinicflow` binary: serve the API (the default), apply migrations, create a clinic,
//! seed demo data, or run the demo (seed, then serve).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clinicflow::seed::{self, BulkOptions, SeedOptions};
use clinicflow::{Application, Settings, telemetry};
use clinicflow_services::NewClinic;

// glibc's malloc and free were about a tenth of the server's time on list answers (many small
// strings per row); see docs/benchmarks.md, "Sixth request-path pass".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "clinicflow",
    version,
    about = "The clinicflow patient-flow server"
)]
struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The database to use, overriding DATABASE_URL and the file.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create a clinic and its first admin.
    CreateClinic {
        /// Display name.
        #[arg(long)]
        name: String,
        /// IANA time zone, such as Europe/Berlin.
        #[arg(long)]
        timezone: String,
        /// The admin's e-mail.
        #[arg(long)]
        admin_email: String,
        /// The admin's password (at least 10 characters).
        #[arg(long)]
        admin_password: String,
    },
    /// Create the demo clinic with practitioners, schedules, patients and appointments.
    Seed {
        /// Patients to create.
        #[arg(long, default_value_t = 200)]
        patients: usize,
        /// Practitioners to create.
        #[arg(long, default_value_t = 6)]
        practitioners: usize,
        /// Benchmark size: write patients and appointments straight to the store, thousands
        /// to a transaction, instead of one use case each.
        #[arg(long)]
        bulk: bool,
        /// Appointments to create with --bulk (default: two per patient).
        #[arg(long, requires = "bulk")]
        appointments: Option<usize>,
    },
    /// Seed the demo clinic if absent, print its login, and serve.
    Demo,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("clinicflow: {message}");
    ExitCode::FAILURE
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = |key: &str| match (key, &cli.database_url) {
        ("DATABASE_URL", Some(url)) => Some(url.clone()),
        _ => std::env::var(key).ok(),
    };
    let settings = match Settings::load_from(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let _log = telemetry::init(settings.log_format());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&settings).await,
        Command::Migrate => match clinicflow::connect(&settings).await {
            Ok(_) => {
                println!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::CreateClinic {
            name,
            timezone,
            admin_email,
            admin_password,
        } => {
            let services = match clinicflow::connect(&settings).await {
                Ok(w) => w.services,
                Err(e) => return fail(e),
            };
            let input = NewClinic {
                name,
                time_zone: timezone,
                admin_email,
                admin_password,
            };
            match services.clinics.create(input).await {
                Ok((clinic, admin)) => {
                    println!(
                        "clinic {} created; admin {} ({})",
                        clinic.id, admin.email, admin.id
                    );
                    ExitCode::SUCCESS
                }
                Err(clinicflow_services::ServiceError::Validation(fields)) => {
                    fail(format!("invalid input: {:?}", fields.fields()))
                }
                Err(e) => fail(e),
            }
        }
        Command::Seed {
            patients,
            practitioners,
            bulk: false,
            ..
        } => {
            let options = SeedOptions {
                patients,
                practitioners,
                ..SeedOptions::default()
            };
            match run_seed(&settings, options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Command::Seed {
            patients,
            practitioners,
            bulk: true,
            appointments,
        } => {
            let options = BulkOptions {
                patients,
                practitioners,
                appointments: appointments.unwrap_or(patients * 2),
                ..BulkOptions::default()
            };
            match run_bulk_seed(&settings, options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Command::Demo => match run_seed(&settings, SeedOptions::default()).await {
            Ok(()) => serve(&settings).await,
            Err(code) => code,
        },
    }
}

async fn run_seed(settings: &Settings, options: SeedOptions) -> Result<(), ExitCode> {
    let services = clinicflow::connect(settings).await.map_err(fail)?.services;
    let report = seed::seed(&services, options, chrono::Utc::now())
        .await
        .map_err(fail)?;
    print_seed(&report);
    Ok(())
}

async fn run_bulk_seed(settings: &Settings, options: BulkOptions) -> Result<(), ExitCode> {
    let wiring = clinicflow::connect(settings).await.map_err(fail)?;
    let report = seed::seed_bulk(&wiring, options, chrono::Utc::now())
        .await
        .map_err(fail)?;
    print_seed(&report);
    Ok(())
}

fn print_seed(report: &seed::SeedReport) {
    if report.existed {
        println!("the demo clinic already exists; nothing created");
    } else {
        println!(
            "created the demo clinic: {} practitioners, {} patients, {} appointments, {} walk-ins waiting",
            report.practitioners, report.patients, report.appointments, report.walk_ins
        );
    }
    println!(
        "demo admin: {} / {}",
        seed::DEMO_ADMIN_EMAIL,
        seed::DEMO_ADMIN_PASSWORD
    );
    for (email, role) in seed::DEMO_STAFF {
        println!("demo {role}: {email} / {}", seed::DEMO_STAFF_PASSWORD);
    }
}

async fn serve(settings: &Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    tracing::info!(bind = %settings.bind, port = app.port(), "clinicflow listening");
    match app.run_until_stopped().await {
        Ok(()) => {
            tracing::info!("clinicflow stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
