//! Forms posted to the dashboard, checked once on the way in: the session (see [`Admin`]), the role
//! the form needs, and the session's CSRF token. A handler that takes an [`AdminForm`] (or, for an
//! upload, an [`AdminUpload`]) only runs for a form that passed.

use actix_multipart::{Field, Multipart};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::{Admin, AdminError};

/// The fields of a form, with the CSRF token every form carries.
pub trait AdminFormData: DeserializeOwned + 'static {
    /// Whether only admins may send it (researchers read, admins change); true unless a form says not.
    const ADMINS_ONLY: bool = true;

    /// The token as the form sent it (empty when it sent none).
    fn csrf(&self) -> &str;
}

/// Implements [`AdminFormData`] for forms admins send, whose token is their `csrf` field.
macro_rules! admin_form {
    ($($form:ty),+ $(,)?) => {
        $(impl $crate::web::admin::form::AdminFormData for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })+
    };
}
pub(crate) use admin_form;

/// A form from a signed-in account whose role may send it, with the session's CSRF token.
pub struct AdminForm<T> {
    pub admin: Admin,
    pub form: T,
}

impl<T: AdminFormData> FromRequest for AdminForm<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admin = Admin::from_request(request, payload);
        let form = web::Form::<T>::from_request(request, payload);
        Box::pin(async move {
            let admin = admin.await?;
            let form = form.await?.into_inner();
            if T::ADMINS_ONLY {
                admin.require_admin()?;
            }
            admin.check_csrf(form.csrf())?;
            Ok(AdminForm { admin, form })
        })
    }
}

/// The longest text field of an upload form.
const MAX_UPLOAD_TEXT: usize = 4096;

/// A multipart form from an admin, read as it streams: the role is checked on arrival; the `csrf` field
/// is taken out of the stream, and checked before a file field is handed out and after the last field.
pub struct AdminUpload {
    admin: Admin,
    parts: Multipart,
    csrf: String,
}

impl FromRequest for AdminUpload {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admin = Admin::from_request(request, payload);
        let parts = Multipart::from_request(request, payload);
        Box::pin(async move {
            let admin = admin.await?;
            admin.require_admin()?;
            Ok(AdminUpload {
                admin,
                parts: parts.await?,
                csrf: String::new(),
            })
        })
    }
}

impl AdminUpload {
    /// The next field other than the token; None after the last.
    pub async fn next_field(&mut self) -> Option<Result<Field, AdminError>> {
        loop {
            let field = match self.parts.next().await? {
                Ok(field) => field,
                Err(e) => return Some(Err(unreadable(e))),
            };
            if field.name() != Some("csrf") {
                return Some(Ok(field));
            }
            match text(field).await {
                Ok(value) => self.csrf = value,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// A field about to be written to disk: only after the session's token.
    pub fn file(&self, field: Field) -> Result<Field, AdminError> {
        self.admin.check_csrf(&self.csrf)?;
        Ok(field)
    }

    /// After the last field: the account, once the form's token checks.
    pub fn finish(self) -> Result<Admin, AdminError> {
        self.admin.check_csrf(&self.csrf)?;
        Ok(self.admin)
    }
}

/// A text field of an upload form, up to [`MAX_UPLOAD_TEXT`] bytes.
pub async fn text(mut field: Field) -> Result<String, AdminError> {
    let name = field.name().unwrap_or_default().to_string();
    let mut value = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if value.len() + chunk.len() > MAX_UPLOAD_TEXT {
            return Err(AdminError::BadRequest(format!(
                "the field {name} is too long"
            )));
        }
        value.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&value).into_owned())
}

/// An upload that broke off or is not multipart.
pub fn unreadable(error: actix_multipart::MultipartError) -> AdminError {
    AdminError::BadRequest(format!("the upload could not be read: {error}"))
}
