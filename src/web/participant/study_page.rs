//! `GET /s/{slug}`: the page a recruitment link opens. The page script drives the session over the API.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::error::AppError;
use crate::states::StudyStatus;
use crate::study::recruit::Recruitment;
use crate::web::pages::{html, ErrorPage};
use crate::web::paths::StudySlug;
use crate::web::AppState;

#[derive(Template)]
#[template(path = "participant/study.html")]
pub struct StudyPage {
    pub slug: String,
    pub title: String,
    pub consent: String,
    pub instructions: String,
    pub debrief: String,
    pub external_id: Option<String>,
    pub source: &'static str,
    pub params_json: String,
    pub feedback: bool,
}

pub async fn show(
    state: web::Data<AppState>,
    slug: StudySlug,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let mut conn = state.pool.acquire().await?;
    let Some(study) = crate::study::by_slug(&mut conn, &slug).await? else {
        return html(
            StatusCode::NOT_FOUND,
            &ErrorPage {
                title: "Study not found",
                message: "There is no study at this address. Please check the link you were given.",
            },
        );
    };
    if study.status != StudyStatus::Active {
        return html(
            StatusCode::OK,
            &ErrorPage {
                title: "This study is not open right now",
                message:
                    "Thank you for your interest. The study is paused or closed at the moment; \
                          please try again later or contact the researchers.",
            },
        );
    }
    let recruitment = Recruitment::from_query(&query);
    let texts = study.config.texts;
    html(
        StatusCode::OK,
        &StudyPage {
            slug: study.slug,
            title: study.title,
            consent: texts.consent,
            instructions: texts.instructions,
            debrief: texts.debrief,
            external_id: recruitment.external_id,
            source: recruitment.source.as_str(),
            params_json: serde_json::Value::Object(recruitment.params).to_string(),
            feedback: study.config.feedback,
        },
    )
}
