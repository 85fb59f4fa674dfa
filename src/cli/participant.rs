//! `meilab participant delete STUDY EXTERNAL_ID`: a participant's withdrawal.

use anyhow::Context;

use crate::config::Settings;
use crate::db::Database;
use crate::study::session;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The study's URL name
    pub study: String,
    /// The participant's id on the recruitment platform (e.g. the Prolific PID), as they gave it
    pub external_id: String,
}

/// Deletes the participant's session, assignments and responses in one transaction.
pub async fn delete(settings: Settings, args: DeleteArgs) -> anyhow::Result<()> {
    // A new secret would give a pseudonym that matches nothing: use only the server's own.
    if settings.secret.is_none() && !settings.data_dir.join("secret.key").exists() {
        anyhow::bail!(
            "no server secret in {} (and MEILAB_SECRET is not set): run this with the server's \
             --data-dir or secret, since stored ids are pseudonyms under it",
            settings.data_dir.display()
        );
    }
    let key = settings.participant_key()?;
    let database = Database::open(&settings).await?;
    let result = async {
        let mut tx = database.pool.begin().await?;
        let withdrawn = session::withdraw(&mut tx, &key, &args.study, &args.external_id)
            .await?;
        tx.commit().await.context("cannot commit the deletion")?;
        match withdrawn {
            Some(w) => println!(
                "deleted the participant's session in study {} (stage {}): {} responses, {} assignments",
                args.study, w.stage, w.deleted.responses, w.deleted.assignments
            ),
            None => println!(
                "no participant with this external id in study {}: nothing deleted",
                args.study
            ),
        }
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}
